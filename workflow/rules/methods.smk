# Train each method per shard, score the evaluation examples, and compute detection metrics.
# Method hyperparameters are params: editing one method re-runs only that method's jobs.


rule train:
    input:
        concepts=rules.concepts.output[0],
        acts=f"{RESULTS}/acts/{{model}}/L{{layer}}/train/{{shard}}.safetensors",
        index=f"{RESULTS}/acts/{{model}}/L{{layer}}/train/{{shard}}.index.parquet",
    output:
        weights=f"{RESULTS}/methods/{{model}}/L{{layer}}/{{method}}/{{shard}}.safetensors",
        cfg=f"{RESULTS}/methods/{{model}}/L{{layer}}/{{method}}/{{shard}}.cfg.json",
    params:
        method=lambda w: as_json(config["methods"][w.method]),
        code=lambda w: code_fingerprint("interpflow.stages.train") + method_code(w.method),
    threads: 1
    log:
        f"{RESULTS}/logs/train/{{model}}/L{{layer}}/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}/L{{layer}}/{{method}}/{{shard}}.tsv"
    shell:
        "interpflow train --threads {threads} --method-cfg {params.method:q} --concepts {input.concepts} --shard {wildcards.shard} "
        "--acts {input.acts} --index {input.index} --out {output.weights} --out-cfg {output.cfg} > {log} 2>&1"


rule detect:
    input:
        weights=rules.train.output.weights,
        acts=f"{RESULTS}/acts/{{model}}/L{{layer}}/latent_eval/{{shard}}.safetensors",
        index=f"{RESULTS}/acts/{{model}}/L{{layer}}/latent_eval/{{shard}}.index.parquet",
    output:
        f"{RESULTS}/latent/{{model}}/L{{layer}}/{{method}}/{{shard}}.parquet",
    params:
        code=lambda w: code_fingerprint("interpflow.stages.detect") + method_code(w.method),
    threads: 1
    log:
        f"{RESULTS}/logs/detect/{{model}}/L{{layer}}/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/detect/{{model}}/L{{layer}}/{{method}}/{{shard}}.tsv"
    shell:
        "interpflow detect --threads {threads} --artifact {input.weights} --acts {input.acts} --index {input.index} --out {output} > {log} 2>&1"


rule evaluate_detection:
    input:
        concepts=rules.concepts.output[0],
        latent=expand(f"{RESULTS}/latent/{{{{model}}}}/L{{{{layer}}}}/{{{{method}}}}/{{shard}}.parquet", shard=SHARDS),
    output:
        f"{RESULTS}/eval/detection/{{model}}/L{{layer}}/{{method}}.parquet",
    params:
        detection=json_param(config["detection"]),
        seed=config["seed"],
        code=code_fingerprint("interpflow.stages.evaluate"),
    threads: 1
    log:
        f"{RESULTS}/logs/evaluate_detection/{{model}}/L{{layer}}/{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_detection/{{model}}/L{{layer}}/{{method}}.tsv"
    shell:
        "interpflow evaluate-detection --threads {threads} --model {wildcards.model} --layer {wildcards.layer} --method {wildcards.method} "
        "--latent {input.latent} --concepts {input.concepts} --detection-cfg {params.detection:q} --seed {params.seed} "
        "--out {output} > {log} 2>&1"
