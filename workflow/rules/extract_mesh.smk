# Marching cubes on the stage-1 density: the file-based hand-over from NeRF to mesh.


rule extract_mesh:
    input:
        config=step_config_file("extract_mesh"),
        ckpt=lambda wildcards: asset_of(wildcards, "stage1", "stage1/ckpt.pt"),
    output:
        mesh=asset("mesh/coarse.obj"),
        report=asset("mesh/extract.json"),
    conda:
        CONDA_ENV
    log:
        logfile("extract_mesh"),
    benchmark:
        bench("extract_mesh")
    threads: 1
    resources:
        mem_mb=resources_of("extract_mesh", "mem_mb"),
        runtime=resources_of("extract_mesh", "runtime"),
    shell:
        "OMP_NUM_THREADS={threads} dreamflow extract --config {input.config} --ckpt {input.ckpt}"
        " --out {output.mesh} > {log} 2>&1"
