# Marching cubes on the density of the stage before the mesh stage (dreamflow/stages.py: EXTRACTION):
# the file-based hand-over from NeRF to mesh.


rule extract_mesh:
    input:
        config=step_config_file(EXTRACTION.name),
        ckpt=lambda wildcards: asset_of(wildcards, EXTRACTED_FROM, STAGES[EXTRACTED_FROM].path("ckpt")),
    output:
        mesh=asset(EXTRACTION.path("mesh")),
        report=asset(EXTRACTION.path("report")),
    conda:
        CONDA_ENV
    log:
        logfile(EXTRACTION.name),
    benchmark:
        bench(EXTRACTION.name)
    threads: 1
    resources:
        mem_mb=resources_of(EXTRACTION.name, "mem_mb"),
        runtime=resources_of(EXTRACTION.name, "runtime"),
    shell:
        "OMP_NUM_THREADS={threads} dreamflow extract --config {input.config} --ckpt {input.ckpt}"
        " --out {output.mesh} > {log} 2>&1"
