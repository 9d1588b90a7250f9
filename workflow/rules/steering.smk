# Steered generation, judging, and steering metrics (factor chosen on `select`, reported on `test`).


rule steer:
    input:
        unpack(steer_inputs),
    output:
        f"{RESULTS}/steering/{{model}}/L{{layer}}/{{method}}/{{shard}}.parquet",
    params:
        method=lambda w: as_json(config["methods"][w.method]),
        model=lambda w: model_params(w.model),
        steering=json_param(config["steering"]),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        artifact=steer_artifact_args,
        code=lambda w: stage_code("interpflow.stages.steer") + method_code(w.method),
    threads: MODEL_THREADS
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/steer/{{model}}/L{{layer}}/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/steer/{{model}}/L{{layer}}/{{method}}/{{shard}}.tsv"
    shell:
        "interpflow steer --threads {threads} --method-cfg {params.method:q} --model-dir {params.folder:q} --model-cfg {params.model:q} "
        "--layer {wildcards.layer:q} --steer-cfg {params.steering:q} --concepts {input.concepts:q} --shard {wildcards.shard:q} "
        "--prompts {input.prompts:q} {params.artifact} --out {output:q} > {log:q} 2>&1"


rule judge:
    input:
        steering=rules.steer.output[0],
        user_files=files_read("judge"),
    output:
        judged=f"{RESULTS}/judged/{{model}}/L{{layer}}/{{method}}/{{shard}}.parquet",
        usage=f"{RESULTS}/judged/{{model}}/L{{layer}}/{{method}}/{{shard}}.usage.json",
    params:
        judge=json_param(judge_settings()),
        cache=f"{config['results_dir']}/cache/judge",
        code=code_fingerprint("interpflow.stages.judge", judge_module(config["judge"]["name"])),
    threads: MODEL_THREADS
    resources:
        llm_api=api_jobs("judge"),
    log:
        f"{RESULTS}/logs/judge/{{model}}/L{{layer}}/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/judge/{{model}}/L{{layer}}/{{method}}/{{shard}}.tsv"
    shell:
        "interpflow judge --threads {threads} --judge-cfg {params.judge:q} --cache-dir {params.cache:q} --steering {input.steering:q} "
        "--out {output.judged:q} --out-usage {output.usage:q} > {log:q} 2>&1"


rule evaluate_steering:
    input:
        expand(f"{RESULTS}/judged/{{{{model}}}}/L{{{{layer}}}}/{{{{method}}}}/{{shard}}.parquet", shard=SHARDS),
    output:
        table=f"{RESULTS}/eval/steering/{{model}}/L{{layer}}/{{method}}.parquet",
        curve=f"{RESULTS}/eval/steering_curve/{{model}}/L{{layer}}/{{method}}.parquet",
    params:
        max_unparsed=unparsed_cap_arg(),
        code=code_fingerprint("interpflow.stages.evaluate"),
    threads: 1
    log:
        f"{RESULTS}/logs/evaluate_steering/{{model}}/L{{layer}}/{{method}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate_steering/{{model}}/L{{layer}}/{{method}}.tsv"
    shell:
        "interpflow evaluate-steering --threads {threads} --model {wildcards.model:q} --layer {wildcards.layer:q} --method {wildcards.method:q} "
        "--judged {input:q} {params.max_unparsed} --out {output.table:q} --out-curve {output.curve:q} > {log:q} 2>&1"
