"""Exceptions that carry a message meant for the user.

Every error raised for bad input derives from :class:`SynthProxyError`; the CLI prints its message
(which names what was wrong and where) without a traceback and exits with status 2.
"""


class SynthProxyError(Exception):
    """Base class for errors caused by user input (configs, files, plugins, data)."""


class ConfigError(SynthProxyError):
    """An invalid configuration value or key."""


class SpecError(SynthProxyError):
    """A synthesizer parameter spec that is malformed or does not match the plugin."""


class PluginNotFoundError(SynthProxyError):
    """A plugin, weight or data file that the configuration points to does not exist."""


class AudioError(SynthProxyError):
    """Audio that cannot be used: NaN/inf samples, silence where sound is required, too short."""


class StoreError(SynthProxyError):
    """A data store that is missing, incomplete or written with other settings."""


class ImportFormatError(SynthProxyError):
    """A preset file (sysex, bank) that is malformed."""


class RenderError(SynthProxyError):
    """A synth engine failed to render a preset (plugin crash, hang, or a render process that died)."""
