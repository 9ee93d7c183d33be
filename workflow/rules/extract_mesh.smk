# Marching cubes on the stage-1 density: the file-based hand-over from NeRF to mesh.


rule extract_mesh:
    input:
        config=RESULTS + "/{suite}/run_config.yaml",
        ckpt=ASSET + "/stage1/ckpt.pt",
    output:
        mesh=ASSET + "/mesh/coarse.obj",
        report=ASSET + "/mesh/extract.json",
    log:
        LOGS + "/extract_mesh.log",
    benchmark:
        BENCH + "/extract_mesh.tsv"
    threads: 1
    resources:
        mem_mb=resources_of("extract_mesh", "mem_mb"),
        runtime=resources_of("extract_mesh", "runtime"),
    shell:
        "OMP_NUM_THREADS={threads} dreamflow extract --config {input.config} --ckpt {input.ckpt}"
        " --out {output.mesh} > {log} 2>&1"
