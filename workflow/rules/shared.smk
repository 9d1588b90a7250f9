# Inputs some methods share: paired answers (preference training) and the sparse autoencoder.


rule pairs:
    input:
        model=rules.prepare_model.output[0],
        data=f"{RESULTS}/data/train/{{shard}}.parquet",
    output:
        f"{RESULTS}/data/pairs/{{model}}/{{shard}}.parquet",
    params:
        model=lambda w: model_params(w.model),
        pairs=json_param(config["pairs"]),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        code=code_fingerprint("interpflow.stages.pairs"),
    threads: MODEL_THREADS
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/pairs/{{model}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pairs/{{model}}/{{shard}}.tsv"
    shell:
        "interpflow pairs --threads {threads} --model-dir {params.folder:q} --model-cfg {params.model:q} "
        "--pairs-cfg {params.pairs:q} --data {input.data:q} --out {output:q} > {log:q} 2>&1"


rule sae:
    input:
        acts=lambda w: sae_training_acts(w.model, w.layer, w.sae),
        user_files=files_read("sae", "sae"),
    output:
        sae_path("{model}", "{layer}", "{sae}"),
    params:
        sae=lambda w: as_json(config["saes"][w.sae]),
        code=code_fingerprint("interpflow.sae.stage"),
    threads: MODEL_THREADS
    resources:
        gpu=sae_gpu,
    log:
        f"{RESULTS}/logs/sae/{{model}}/L{{layer}}/{{sae}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sae/{{model}}/L{{layer}}/{{sae}}.tsv"
    shell:
        "interpflow sae --threads {threads} --sae-cfg {params.sae:q} --acts {input.acts:q} --layer {wildcards.layer:q} "
        "--out {output:q} > {log:q} 2>&1"
