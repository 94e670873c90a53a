# synthproxy: neural proxies for sound synthesizers (Combes et al., JAES 2025; Masuda & Saito, TASLP 2023).
#
#   snakemake --cores all results/tables                              # default config (laptop scale)
#   snakemake --cores all results/tables --configfile config/tiny.yaml  # CI scale (target first:
#                                                                     --configfile takes several files)
#   snakemake --profile profiles/slurm --configfile config/paper.yaml     # paper scale on SLURM
#
# The rules live in workflow/rules/*.smk, grouped by stage; each runs the `python -m synthproxy` step of the same
# name (rule render_shard -> step render-shard).
from snakemake.utils import min_version

min_version("9.0")


# The default config applies only when no --configfile is given: Snakemake would otherwise merge the two
# (e.g. config/paper.yaml would inherit the default config's scaled-down encoders).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


envvars:
    "PATH",


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/ranking.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/handcrafted.smk"
include: "workflow/rules/matching.smk"
include: "workflow/rules/ddsp.smk"
include: "workflow/rules/tables.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
