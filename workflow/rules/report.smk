# The leaderboard: every (model, layer, method), detection and steering side by side, and plots.


rule run_config:
    output:
        f"{RESULTS}/config.yaml",
    params:
        cfg=json_param(config),
    log:
        f"{RESULTS}/logs/run_config.log",
    shell:
        "interpflow run-config --cfg {params.cfg:q} --out {output:q} > {log:q} 2>&1"


rule leaderboard:
    input:
        detection=run_paths(f"{RESULTS}/eval/detection/{{model}}/L{{layer}}/{{method}}.parquet", "detects"),
        steering=run_paths(f"{RESULTS}/eval/steering/{{model}}/L{{layer}}/{{method}}.parquet", "steers"),
        curves=run_paths(f"{RESULTS}/eval/steering_curve/{{model}}/L{{layer}}/{{method}}.parquet", "steers"),
        usage=[
            f"{RESULTS}/judged/{m}/L{l}/{meth}/{s}.usage.json" for m, l, meth in runs("steers") for s in SHARDS
        ],
        generation_usage=[rules.concepts.output.usage]
        + [f"{RESULTS}/data/{split}/{s}.usage.json" for split in ("train", "latent_eval") for s in SHARDS],
        # SAE methods' artifacts: how each concept's latent was chosen (`latent_choice`)
        latent_artifacts=[
            f"{RESULTS}/methods/{m}/L{l}/{meth}/{s}.safetensors"
            for m, l in model_layers() for meth in METHODS if method_info(meth).uses_sae for s in SHARDS
        ],
    output:
        md=report(f"{RESULTS}/leaderboard.md", category="Leaderboard"),
        csv=report(f"{RESULTS}/leaderboard.csv", category="Leaderboard"),
        detection_plot=report(f"{RESULTS}/plots/detection_auc.png", category="Plots"),
        steering_plot=report(f"{RESULTS}/plots/steering_vs_factor.png", category="Plots"),
    params:
        runs=" ".join(f"{m}:{l}:{meth}" for m, l in model_layers() for meth in METHODS),
        code=code_fingerprint("interpflow.report.leaderboard"),
    threads: 1
    log:
        f"{RESULTS}/logs/leaderboard.log",
    benchmark:
        f"{RESULTS}/benchmarks/leaderboard.tsv"
    shell:
        "interpflow leaderboard --threads {threads} --runs {params.runs} --detection {input.detection:q} --steering {input.steering:q} --curves {input.curves:q} "
        "--usage {input.usage:q} --generation-usage {input.generation_usage:q} --out-md {output.md:q} --out-csv {output.csv:q} "
        "--out-detection-plot {output.detection_plot:q} --out-steering-plot {output.steering_plot:q} "
        "--latent-artifacts {input.latent_artifacts:q} > {log:q} 2>&1"
