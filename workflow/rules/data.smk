# The concept list, training data, evaluation data (with hard negatives) and steering prompts.


rule concepts:
    output:
        concepts=f"{RESULTS}/concepts.parquet",
        usage=f"{RESULTS}/concepts.usage.json",
    params:
        cfg=json_param({k: config[k] for k in ("run_name", "results_dir", "concepts", "generator")}),
        code=code_fingerprint("interpflow.stages.data"),
    threads: 1
    resources:
        llm_api=api_jobs("generator"),
    log:
        f"{RESULTS}/logs/concepts.log",
    benchmark:
        f"{RESULTS}/benchmarks/concepts.tsv"
    shell:
        "interpflow concepts --threads {threads} --cfg {params.cfg:q} --out {output.concepts} --out-usage {output.usage} > {log} 2>&1"


rule train_data:
    input:
        concepts=rules.concepts.output.concepts,
    output:
        data=f"{RESULTS}/data/train/{{shard}}.parquet",
        usage=f"{RESULTS}/data/train/{{shard}}.usage.json",
    params:
        cfg=json_param({k: config[k] for k in ("run_name", "results_dir", "generator", "seed")}),
        code=code_fingerprint("interpflow.stages.data"),
    threads: 1
    resources:
        llm_api=api_jobs("generator"),
    log:
        f"{RESULTS}/logs/train_data/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_data/{{shard}}.tsv"
    shell:
        "interpflow train-data --threads {threads} --cfg {params.cfg:q} --concepts {input.concepts} --shard {wildcards.shard} "
        "--out {output.data} --out-usage {output.usage} > {log} 2>&1"


rule eval_data:
    input:
        concepts=rules.concepts.output.concepts,
        # after train_data: a generator's cached answers are then reused, not generated twice
        train=rules.train_data.output.data,
    output:
        latent=f"{RESULTS}/data/latent_eval/{{shard}}.parquet",
        prompts=f"{RESULTS}/data/steer_prompts/{{shard}}.parquet",
        usage=f"{RESULTS}/data/latent_eval/{{shard}}.usage.json",
    params:
        cfg=json_param(
            {
                "run_name": config["run_name"],
                "results_dir": config["results_dir"],
                "generator": config["generator"],
                "seed": config["seed"],
                "steering": {k: config["steering"][k] for k in ("instructions", "instructions_per_concept")},
            }
        ),
        code=code_fingerprint("interpflow.stages.data"),
    threads: 1
    resources:
        llm_api=api_jobs("generator"),
    log:
        f"{RESULTS}/logs/eval_data/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_data/{{shard}}.tsv"
    shell:
        "interpflow eval-data --threads {threads} --cfg {params.cfg:q} --concepts {input.concepts} --shard {wildcards.shard} "
        "--out-latent {output.latent} --out-steer {output.prompts} --out-usage {output.usage} --seen-data {input.train} > {log} 2>&1"
