# The concept list, training data, evaluation data (with hard negatives), steering prompts, and the
# run's imbalance pool of plain negatives (data/latent_eval/pool.parquet, cached like a shard).


rule concepts:
    input:
        generator_model=GENERATOR_MODEL,
        user_files=files_read("concepts"),
    output:
        concepts=f"{RESULTS}/concepts.parquet",
        usage=f"{RESULTS}/concepts.usage.json",
    params:
        cfg=json_param({k: config[k] for k in ("run_name", "results_dir", "concepts", "generator")}),
        code=data_code("interpflow.stages.data", "concepts"),
    threads: 1
    resources:
        llm_api=api_jobs("generator"),
    log:
        f"{RESULTS}/logs/concepts.log",
    benchmark:
        f"{RESULTS}/benchmarks/concepts.tsv"
    shell:
        "interpflow concepts --threads {threads} --cfg {params.cfg:q} --out {output.concepts:q} --out-usage {output.usage:q} > {log:q} 2>&1"


rule train_data:
    input:
        concepts=rules.concepts.output.concepts,
        generator_model=GENERATOR_MODEL,
        user_files=files_read("train_data"),
    output:
        data=f"{RESULTS}/data/train/{{shard}}.parquet",
        usage=f"{RESULTS}/data/train/{{shard}}.usage.json",
    params:
        cfg=json_param({**{k: config[k] for k in ("run_name", "results_dir", "generator", "seed")},
                        "steering": {"instructions": config["steering"]["instructions"]}}),
        code=data_code("interpflow.stages.data", "train_data"),
    threads: 1
    resources:
        llm_api=api_jobs("generator"),
        gpu=config["model_job_gpus"] * int(config["generator"]["name"] == "local"),
    log:
        f"{RESULTS}/logs/train_data/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_data/{{shard}}.tsv"
    shell:
        "interpflow train-data --threads {threads} --cfg {params.cfg:q} --concepts {input.concepts:q} --shard {wildcards.shard:q} "
        "--out {output.data:q} --out-usage {output.usage:q} > {log:q} 2>&1"


rule eval_data:
    input:
        concepts=rules.concepts.output.concepts,
        generator_model=GENERATOR_MODEL,
        # an API generator runs after train_data, so its cached answers are reused, not paid twice
        train=lambda w: [rules.train_data.output.data.format(shard=w.shard)] if api_jobs("generator") else [],
        user_files=files_read("eval_data"),
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
        code=data_code("interpflow.stages.data", "eval_data"),
    threads: 1
    resources:
        llm_api=api_jobs("generator"),
        gpu=config["model_job_gpus"] * int(config["generator"]["name"] == "local"),
    log:
        f"{RESULTS}/logs/eval_data/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/eval_data/{{shard}}.tsv"
    shell:
        "interpflow eval-data --threads {threads} --cfg {params.cfg:q} --concepts {input.concepts:q} --shard {wildcards.shard:q} "
        "--out-latent {output.latent:q} --out-steer {output.prompts:q} --out-usage {output.usage:q} > {log:q} 2>&1"


rule imbalance_pool:
    input:
        # a data set's pool comes from its whole evaluation file (user_files); generated data's from the shards
        latent=expand(f"{RESULTS}/data/latent_eval/{{shard}}.parquet", shard=SHARDS),
        user_files=files_read("imbalance_pool"),
    output:
        f"{RESULTS}/data/latent_eval/pool.parquet",
    params:
        cfg=json_param({**{k: config[k] for k in ("run_name", "results_dir", "generator")},
                        "detection": {k: config["detection"][k] for k in ("imbalance_ratio", "short_pool", "pool_seed")}}),
        code=data_code("interpflow.stages.data", "imbalance_pool"),
    threads: 1
    log:
        f"{RESULTS}/logs/imbalance_pool.log",
    benchmark:
        f"{RESULTS}/benchmarks/imbalance_pool.tsv"
    shell:
        "interpflow imbalance-pool --threads {threads} --cfg {params.cfg:q} --latent {input.latent:q} "
        "--out {output:q} > {log:q} 2>&1"
