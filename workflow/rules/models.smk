# Convert each configured model once into a folder later jobs load in seconds.


rule prepare_model:
    input:
        user_files=files_read("prepare_model", "model"),
    output:
        f"{MODELS_DIR}/{{model}}/interpflow_model.json",
    params:
        model=lambda w: conversion_params(w.model),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        code=code_fingerprint("interpflow.stages.prepare"),
    threads: MODEL_THREADS
    log:
        f"{RESULTS}/logs/prepare_model/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prepare_model/{{model}}.tsv"
    shell:
        "interpflow prepare-model --threads {threads} --model-cfg {params.model:q} --out-dir {params.folder:q} > {log:q} 2>&1"


if GENERATOR_MODEL:

    rule prepare_generator:
        input:
            user_files=files_read("prepare_generator"),
        output:
            GENERATOR_MODEL[0],
        params:
            model=json_param({"name": "generator", **config["generator"]["model"]}),
            folder=config["generator"]["prepared_dir"],
            code=code_fingerprint("interpflow.stages.prepare"),
        threads: MODEL_THREADS
        log:
            f"{RESULTS}/logs/prepare_generator.log",
        benchmark:
            f"{RESULTS}/benchmarks/prepare_generator.tsv"
        shell:
            "interpflow prepare-model --threads {threads} --model-cfg {params.model:q} --out-dir {params.folder:q} > {log:q} 2>&1"
