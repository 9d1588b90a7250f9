# Train each method per shard, score the evaluation examples, and compute detection metrics.
# Method hyperparameters are params: editing one method re-runs only that method's jobs.
# What a job reads follows the method's `needs` (activations, text, or the model in the loop).


rule train:
    input:
        unpack(train_inputs),
    output:
        weights=f"{RESULTS}/methods/{{model}}/L{{layer}}/{{method}}/{{shard}}.safetensors",
        cfg=f"{RESULTS}/methods/{{model}}/L{{layer}}/{{method}}/{{shard}}.cfg.json",
    params:
        method=lambda w: as_json(config["methods"][w.method]),
        inputs=method_input_args,
        # per-concept checkpoints of a running job; kept when it dies, removed when it finishes
        checkpoints=f"{RESULTS}/methods/{{model}}/L{{layer}}/{{method}}/{{shard}}.checkpoints",
        seed=config["seed"],
        code=lambda w: stage_code("interpflow.stages.train") + method_code(w.method),
    threads: method_threads
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/train/{{model}}/L{{layer}}/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model}}/L{{layer}}/{{method}}/{{shard}}.tsv"
    shell:
        "interpflow train --threads {threads} --method-cfg {params.method:q} --concepts {input.concepts:q} --shard {wildcards.shard:q} "
        "--data {input.data:q} {params.inputs} --checkpoints {params.checkpoints:q} --seed {params.seed} "
        "--out {output.weights:q} --out-cfg {output.cfg:q} > {log:q} 2>&1"


rule detect:
    input:
        unpack(detect_inputs),
    output:
        f"{RESULTS}/latent/{{model}}/L{{layer}}/{{method}}/{{shard}}.parquet",
    params:
        method=lambda w: as_json(config["methods"][w.method]),
        inputs=method_input_args,
        code=lambda w: stage_code("interpflow.stages.detect") + method_code(w.method),
    threads: method_threads
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/detect/{{model}}/L{{layer}}/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/detect/{{model}}/L{{layer}}/{{method}}/{{shard}}.tsv"
    shell:
        "interpflow detect --threads {threads} --method-cfg {params.method:q} --concepts {input.concepts:q} "
        "--shard {wildcards.shard:q} --data {input.data:q} {params.inputs} --out {output:q} > {log:q} 2>&1"


rule evaluate_detection:
    input:
        concepts=rules.concepts.output[0],
        latent=expand(f"{RESULTS}/latent/{{{{model}}}}/L{{{{layer}}}}/{{{{method}}}}/{{shard}}.parquet", shard=SHARDS),
    output:
        f"{RESULTS}/eval/detection/{{model}}/L{{layer}}/{{method}}.parquet",
    params:
        detection=json_param(config["detection"]),
        code=code_fingerprint("interpflow.stages.evaluate"),
    threads: 1
    log:
        f"{RESULTS}/logs/evaluate_detection/{{model}}/L{{layer}}/{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_detection/{{model}}/L{{layer}}/{{method}}.tsv"
    shell:
        "interpflow evaluate-detection --threads {threads} --model {wildcards.model:q} --layer {wildcards.layer:q} --method {wildcards.method:q} "
        "--latent {input.latent:q} --concepts {input.concepts:q} --detection-cfg {params.detection:q} "
        "--out {output:q} > {log:q} 2>&1"
