# One forward pass (stopped after block L) per (model, layer, split, shard), read by every activation method;
# the run's imbalance pool is cached as the latent_eval split's shard `pool`.


rule cache_activations:
    wildcard_constraints:
        shard=r"s\d\d\d\d+|pool",
    input:
        model=rules.prepare_model.output[0],
        data=f"{RESULTS}/data/{{split}}/{{shard}}.parquet",
    output:
        acts=f"{RESULTS}/acts/{{model}}/L{{layer}}/{{split}}/{{shard}}.safetensors",
        index=f"{RESULTS}/acts/{{model}}/L{{layer}}/{{split}}/{{shard}}.index.parquet",
    params:
        model=lambda w: model_params(w.model),
        acts=json_param(config["activations"]),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        code=code_fingerprint("interpflow.stages.activations"),
    threads: MODEL_THREADS
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/cache_activations/{{model}}/L{{layer}}/{{split}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cache_activations/{{model}}/L{{layer}}/{{split}}/{{shard}}.tsv"
    shell:
        "interpflow cache-activations --threads {threads} --model-dir {params.folder:q} --model-cfg {params.model:q} --layer {wildcards.layer:q} "
        "--act-cfg {params.acts:q} --data {input.data:q} --out {output.acts:q} --out-index {output.index:q} > {log:q} 2>&1"
