"""Fetch the public DX7 cartridge compilation when no local copy is configured.

The Dexed_cart 1.0 compilation is the public repository visualizersdotnl/Yamaha-DX7-patch-library at a
pinned commit. Its archive is downloaded once, only the ``.syx`` files are extracted (with their folder
layout) into a cache folder, and a manifest hash over (relative path, SHA256 of content) of those files
is checked against the pinned value, so the data is exactly what the paper-scale numbers were made with
(archives themselves are not byte-stable across downloads; their content is).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from synthproxy.errors import PluginNotFoundError, SpecError

DX7_REPO = "visualizersdotnl/Yamaha-DX7-patch-library"
DX7_COMMIT = "6b17188f"
# Manifest of the .syx files of ../shared/data/dx7/dexed_cart (gathered from that commit).
DX7_MANIFEST_SHA256 = "dfed727166c97d9d5b3e9d15adc6e67354da0a394d158b49eb81ab24e0823d48"


def syx_manifest(root: Path) -> str:
    """Hash of every ``.syx`` file under ``root``: sorted relative paths with the SHA256 of their content."""
    h = hashlib.sha256()
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() == ".syx")
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def fetch_dx7_cartridges(dest: Path, url: str | None = None, manifest_sha256: str = DX7_MANIFEST_SHA256,
                         timeout: float = 60.0) -> Path:
    """Download, extract (``.syx`` only) and verify the compilation into ``dest``; returns ``dest``.

    Offline, stops with a message saying where to put the files. A complete, verified ``dest`` is reused.
    """
    dest = Path(dest)
    if dest.is_dir() and syx_manifest(dest) == manifest_sha256:
        return dest
    url = url or f"https://github.com/{DX7_REPO}/archive/{DX7_COMMIT}.tar.gz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PluginNotFoundError(
            f"could not download the DX7 cartridges from {url} ({exc}). Without network access, copy the .syx files "
            f"of {DX7_REPO} at commit {DX7_COMMIT} (folder layout kept) to a folder and set "
            "'handcrafted.synths.dexed.path' to it"
        ) from exc
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            if not member.isfile() or not member.name.lower().endswith(".syx"):
                continue
            rel = Path(*Path(member.name).parts[1:])  # drop the archive's top folder
            if rel.is_absolute() or ".." in rel.parts:
                continue
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            extracted = tar.extractfile(member)
            assert extracted is not None
            out.write_bytes(extracted.read())
    got = syx_manifest(tmp)
    if got != manifest_sha256:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SpecError(f"DX7 cartridges from {url}: content checksum mismatch (expected {manifest_sha256}, got {got})")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
