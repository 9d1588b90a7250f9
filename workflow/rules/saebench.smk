# The SAE benchmark (SAEBench protocol): each evaluation of `saebench.evals` for every SAE of `saes`
# at every (model, layer), over the activations the concept benchmark already caches.


def saebench_eval_data(w):
    """The latent-evaluation shards' data and cached activations (shared with the concept benchmark)."""
    base = f"{RESULTS}/acts/{w.model}/L{w.layer}/latent_eval"
    return {
        "model": rules.prepare_model.output[0].format(model=w.model),
        "sae": sae_path(w.model, w.layer, w.sae),
        "acts": [f"{base}/{s}.safetensors" for s in SHARDS],
        "index": [f"{base}/{s}.index.parquet" for s in SHARDS],
        "data": [f"{RESULTS}/data/latent_eval/{s}.parquet" for s in SHARDS],
    }


rule saebench_core:
    input:
        unpack(saebench_eval_data),
    output:
        f"{RESULTS}/saebench/{{model}}/L{{layer}}/{{sae}}/core.json",
    params:
        model=lambda w: model_params(w.model),
        eval=json_param(config["saebench"]["core"]),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        code=code_fingerprint("interpflow.saebench.core"),
    threads: MODEL_THREADS
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/saebench/{{model}}/L{{layer}}/{{sae}}/core.log",
    benchmark:
        f"{RESULTS}/benchmarks/saebench/{{model}}/L{{layer}}/{{sae}}/core.tsv"
    shell:
        "interpflow saebench-core --threads {threads} --model-dir {params.folder:q} --model-cfg {params.model:q} "
        "--layer {wildcards.layer:q} --sae {input.sae:q} --sae-name {wildcards.sae:q} --acts {input.acts:q} --index {input.index:q} "
        "--data {input.data:q} --eval-cfg {params.eval:q} --out {output:q} > {log:q} 2>&1"


def saebench_probe_data(w):
    """Both splits' cached activations: probes fit on train and are scored on latent_eval."""
    base = f"{RESULTS}/acts/{w.model}/L{w.layer}"
    return {
        "sae": sae_path(w.model, w.layer, w.sae),
        "train_acts": [f"{base}/train/{s}.safetensors" for s in SHARDS],
        "train_index": [f"{base}/train/{s}.index.parquet" for s in SHARDS],
        "test_acts": [f"{base}/latent_eval/{s}.safetensors" for s in SHARDS],
        "test_index": [f"{base}/latent_eval/{s}.index.parquet" for s in SHARDS],
    }


rule saebench_autointerp:
    input:
        unpack(saebench_eval_data),
    output:
        f"{RESULTS}/saebench/{{model}}/L{{layer}}/{{sae}}/autointerp.json",
    params:
        model=lambda w: model_params(w.model),
        eval=json_param({**config["saebench"]["autointerp"], "max_length": config["activations"]["max_length"]}),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        cache=f"{config['results_dir']}/cache/autointerp",
        code=code_fingerprint("interpflow.saebench.autointerp"),
    threads: 1
    resources:
        llm_api=1,
    log:
        f"{RESULTS}/logs/saebench/{{model}}/L{{layer}}/{{sae}}/autointerp.log",
    benchmark:
        f"{RESULTS}/benchmarks/saebench/{{model}}/L{{layer}}/{{sae}}/autointerp.tsv"
    shell:
        "interpflow saebench-autointerp --model-dir {params.folder:q} --model-cfg {params.model:q} --sae {input.sae:q} "
        "--sae-name {wildcards.sae:q} --acts {input.acts:q} --data {input.data:q} --eval-cfg {params.eval:q} "
        "--cache-dir {params.cache:q} --layer {wildcards.layer:q} --out {output:q} > {log:q} 2>&1"


# Evaluations that read only the cached activations of both splits (no model): one rule, the
# evaluation a wildcard, its settings under saebench.<eval>.
PROBE_EVALS = ["sparse_probing", "tpp"]


rule saebench_probe:
    input:
        unpack(saebench_probe_data),
    output:
        f"{RESULTS}/saebench/{{model}}/L{{layer}}/{{sae}}/{{probe_eval}}.json",
    wildcard_constraints:
        probe_eval="|".join(PROBE_EVALS),
    params:
        eval=lambda w: as_json(config["saebench"][w.probe_eval]),
        command=lambda w: "saebench-" + w.probe_eval.replace("_", "-"),
        code=lambda w: code_fingerprint(f"interpflow.saebench.{w.probe_eval}"),
    threads: 1
    log:
        f"{RESULTS}/logs/saebench/{{model}}/L{{layer}}/{{sae}}/{{probe_eval}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/saebench/{{model}}/L{{layer}}/{{sae}}/{{probe_eval}}.tsv"
    shell:
        "interpflow {params.command} --sae {input.sae:q} --sae-name {wildcards.sae:q} "
        "--train-acts {input.train_acts:q} --train-index {input.train_index:q} --test-acts {input.test_acts:q} "
        "--test-index {input.test_index:q} --model-name {wildcards.model:q} --layer {wildcards.layer:q} "
        "--eval-cfg {params.eval:q} --out {output:q} > {log:q} 2>&1"


# SCR reads its own texts: the two-attribute biographies, written once per run and cached at each
# (model, layer) like the concept data.
SCR = config["saebench"]["scr"]


rule saebench_texts:
    output:
        f"{RESULTS}/saebench/data/two_attribute.parquet",
    params:
        pairs=SCR["pairs"],
        code=code_fingerprint("interpflow.saebench.two_attribute"),
    log:
        f"{RESULTS}/logs/saebench/two_attribute.log",
    shell:
        "interpflow saebench-texts --pairs {params.pairs} --train-per-cell {SCR[train_per_cell]} "
        "--test-per-cell {SCR[test_per_cell]} --seed {SCR[seed]} --out {output:q} > {log:q} 2>&1"


rule cache_saebench_texts:
    input:
        model=rules.prepare_model.output[0],
        data=rules.saebench_texts.output[0],
    output:
        acts=f"{RESULTS}/acts/{{model}}/L{{layer}}/saebench/two_attribute.safetensors",
        index=f"{RESULTS}/acts/{{model}}/L{{layer}}/saebench/two_attribute.index.parquet",
    params:
        model=lambda w: model_params(w.model),
        acts=json_param(config["activations"]),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        code=code_fingerprint("interpflow.stages.activations"),
    threads: MODEL_THREADS
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/cache_activations/{{model}}/L{{layer}}/saebench/two_attribute.log",
    benchmark:
        f"{RESULTS}/benchmarks/cache_activations/{{model}}/L{{layer}}/saebench/two_attribute.tsv"
    shell:
        "interpflow cache-activations --threads {threads} --model-dir {params.folder:q} --model-cfg {params.model:q} "
        "--layer {wildcards.layer:q} --act-cfg {params.acts:q} --data {input.data:q} --out {output.acts:q} "
        "--out-index {output.index:q} > {log:q} 2>&1"


rule saebench_scr:
    input:
        sae=lambda w: sae_path(w.model, w.layer, w.sae),
        acts=rules.cache_saebench_texts.output.acts,
        index=rules.cache_saebench_texts.output.index,
        texts=rules.saebench_texts.output[0],
    output:
        f"{RESULTS}/saebench/{{model}}/L{{layer}}/{{sae}}/scr.json",
    params:
        # the texts' own settings (pairs, cells) are the saebench_texts job's
        eval=json_param({k: v for k, v in SCR.items() if k not in ("pairs", "train_per_cell", "test_per_cell")}),
        code=code_fingerprint("interpflow.saebench.scr"),
    threads: 1
    log:
        f"{RESULTS}/logs/saebench/{{model}}/L{{layer}}/{{sae}}/scr.log",
    benchmark:
        f"{RESULTS}/benchmarks/saebench/{{model}}/L{{layer}}/{{sae}}/scr.tsv"
    shell:
        "interpflow saebench-scr --sae {input.sae:q} --sae-name {wildcards.sae:q} --acts {input.acts:q} --index {input.index:q} "
        "--texts {input.texts:q} --model-name {wildcards.model:q} --layer {wildcards.layer:q} --eval-cfg {params.eval:q} "
        "--out {output:q} > {log:q} 2>&1"


# Absorption reads the first-letter prompts' word-token activations, cached once per (model, layer)
# and shared by every SAE; only the evaluation's own settings reach the per-SAE job.
ABSORPTION = config["saebench"]["absorption"]
FIRST_LETTER_KEYS = ("n_words", "prompt_template", "max_icl_examples", "train_fraction", "batch_size", "seed")


rule cache_first_letter:
    input:
        model=rules.prepare_model.output[0],
    output:
        acts=f"{RESULTS}/acts/{{model}}/L{{layer}}/saebench/first_letter.safetensors",
        index=f"{RESULTS}/acts/{{model}}/L{{layer}}/saebench/first_letter.index.parquet",
    params:
        model=lambda w: model_params(w.model),
        data=json_param({k: ABSORPTION[k] for k in FIRST_LETTER_KEYS}),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        code=code_fingerprint("interpflow.saebench.first_letter"),
    threads: MODEL_THREADS
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/cache_activations/{{model}}/L{{layer}}/saebench/first_letter.log",
    benchmark:
        f"{RESULTS}/benchmarks/cache_activations/{{model}}/L{{layer}}/saebench/first_letter.tsv"
    shell:
        "interpflow saebench-first-letter --threads {threads} --model-dir {params.folder:q} --model-cfg {params.model:q} "
        "--layer {wildcards.layer:q} --eval-cfg {params.data:q} --out {output.acts:q} --out-index {output.index:q} > {log:q} 2>&1"


rule saebench_absorption:
    input:
        sae=lambda w: sae_path(w.model, w.layer, w.sae),
        acts=rules.cache_first_letter.output.acts,
        index=rules.cache_first_letter.output.index,
    output:
        f"{RESULTS}/saebench/{{model}}/L{{layer}}/{{sae}}/absorption.json",
    params:
        eval=json_param({k: v for k, v in ABSORPTION.items() if k not in FIRST_LETTER_KEYS or k == "seed"}),
        code=code_fingerprint("interpflow.saebench.absorption"),
    threads: 1
    log:
        f"{RESULTS}/logs/saebench/{{model}}/L{{layer}}/{{sae}}/absorption.log",
    benchmark:
        f"{RESULTS}/benchmarks/saebench/{{model}}/L{{layer}}/{{sae}}/absorption.tsv"
    shell:
        "interpflow saebench-absorption --sae {input.sae:q} --sae-name {wildcards.sae:q} --acts {input.acts:q} "
        "--index {input.index:q} --model-name {wildcards.model:q} --layer {wildcards.layer:q} --eval-cfg {params.eval:q} "
        "--out {output:q} > {log:q} 2>&1"


# RAVEL: which city prompts the model answers right is found once per model; each SAE then learns
# its attribute masks with the model (gradients flow through the blocks after its layer).
RAVEL = config["saebench"]["ravel"]


rule ravel_prompts:
    input:
        model=rules.prepare_model.output[0],
    output:
        f"{RESULTS}/saebench/data/{{model}}/ravel_prompts.parquet",
    params:
        model=lambda w: model_params(w.model),
        data=json_param({k: RAVEL[k] for k in ("n_generated_tokens", "batch_size")}),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        code=code_fingerprint("interpflow.saebench.ravel"),
    threads: MODEL_THREADS
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/saebench/{{model}}/ravel_prompts.log",
    benchmark:
        f"{RESULTS}/benchmarks/saebench/{{model}}/ravel_prompts.tsv"
    shell:
        "interpflow saebench-ravel-prompts --threads {threads} --model-dir {params.folder:q} --model-cfg {params.model:q} "
        "--eval-cfg {params.data:q} --out {output:q} > {log:q} 2>&1"


rule saebench_ravel:
    input:
        model=rules.prepare_model.output[0],
        sae=lambda w: sae_path(w.model, w.layer, w.sae),
        prompts=rules.ravel_prompts.output[0],
    output:
        f"{RESULTS}/saebench/{{model}}/L{{layer}}/{{sae}}/ravel.json",
    params:
        model=lambda w: model_params(w.model),
        eval=json_param(RAVEL),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        code=code_fingerprint("interpflow.saebench.ravel"),
    threads: MODEL_THREADS
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/saebench/{{model}}/L{{layer}}/{{sae}}/ravel.log",
    benchmark:
        f"{RESULTS}/benchmarks/saebench/{{model}}/L{{layer}}/{{sae}}/ravel.tsv"
    shell:
        "interpflow saebench-ravel --threads {threads} --model-dir {params.folder:q} --model-cfg {params.model:q} "
        "--layer {wildcards.layer:q} --sae {input.sae:q} --sae-name {wildcards.sae:q} --prompts {input.prompts:q} "
        "--eval-cfg {params.eval:q} --out {output:q} > {log:q} 2>&1"


# Unlearning: which questions the unmodified model knows is found once per model, the forget and retain
# corpora's residuals once per (model, layer); each SAE then runs its clamping sweep on the known questions.
UNLEARNING = config["saebench"]["unlearning"]
UNLEARNING_QUESTION_KEYS = ("answer_format", "cloze_template", "pre_question", "answer_prefix", "batch_size",
                            "forget_questions", "retain_questions")
UNLEARNING_CORPUS_KEYS = ("corpus_max_length", "batch_size", "forget_corpus", "retain_corpus")


rule unlearning_questions:
    input:
        model=rules.prepare_model.output[0],
        user_files=files_read("unlearning_questions"),
    output:
        f"{RESULTS}/saebench/data/{{model}}/unlearning_questions.parquet",
    params:
        model=lambda w: model_params(w.model),
        data=json_param({k: UNLEARNING[k] for k in UNLEARNING_QUESTION_KEYS}),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        code=code_fingerprint("interpflow.saebench.unlearning_mcq"),
    threads: MODEL_THREADS
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/saebench/{{model}}/unlearning_questions.log",
    benchmark:
        f"{RESULTS}/benchmarks/saebench/{{model}}/unlearning_questions.tsv"
    shell:
        "interpflow saebench-unlearning-questions --threads {threads} --model-dir {params.folder:q} "
        "--model-cfg {params.model:q} --eval-cfg {params.data:q} --out {output:q} > {log:q} 2>&1"


rule cache_unlearning_corpus:
    input:
        model=rules.prepare_model.output[0],
        user_files=files_read("cache_unlearning_corpus"),
    output:
        f"{RESULTS}/acts/{{model}}/L{{layer}}/saebench/unlearning_corpus.safetensors",
    params:
        model=lambda w: model_params(w.model),
        data=json_param({k: UNLEARNING[k] for k in UNLEARNING_CORPUS_KEYS}),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        code=code_fingerprint("interpflow.saebench.unlearning_mcq"),
    threads: MODEL_THREADS
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/cache_activations/{{model}}/L{{layer}}/saebench/unlearning_corpus.log",
    benchmark:
        f"{RESULTS}/benchmarks/cache_activations/{{model}}/L{{layer}}/saebench/unlearning_corpus.tsv"
    shell:
        "interpflow saebench-unlearning-corpus --threads {threads} --model-dir {params.folder:q} --model-cfg {params.model:q} "
        "--layer {wildcards.layer:q} --eval-cfg {params.data:q} --out {output:q} > {log:q} 2>&1"


rule saebench_unlearning:
    input:
        model=rules.prepare_model.output[0],
        sae=lambda w: sae_path(w.model, w.layer, w.sae),
        questions=rules.unlearning_questions.output[0],
        corpus=rules.cache_unlearning_corpus.output[0],
    output:
        f"{RESULTS}/saebench/{{model}}/L{{layer}}/{{sae}}/unlearning.json",
    params:
        model=lambda w: model_params(w.model),
        eval=json_param(UNLEARNING),
        folder=lambda w: f"{MODELS_DIR}/{w.model}",
        code=code_fingerprint("interpflow.saebench.unlearning"),
    threads: MODEL_THREADS
    resources:
        gpu=model_gpu,
    log:
        f"{RESULTS}/logs/saebench/{{model}}/L{{layer}}/{{sae}}/unlearning.log",
    benchmark:
        f"{RESULTS}/benchmarks/saebench/{{model}}/L{{layer}}/{{sae}}/unlearning.tsv"
    shell:
        "interpflow saebench-unlearning --threads {threads} --model-dir {params.folder:q} --model-cfg {params.model:q} "
        "--layer {wildcards.layer:q} --sae {input.sae:q} --sae-name {wildcards.sae:q} --questions {input.questions:q} "
        "--corpus {input.corpus:q} --eval-cfg {params.eval:q} --out {output:q} > {log:q} 2>&1"


rule saebench_leaderboard:
    input:
        results=SAEBENCH_RESULTS,
        concept=f"{RESULTS}/leaderboard.csv",
        published=files_read("saebench_leaderboard"),  # saebench.published: SAEBench's own results
    output:
        md=report(f"{RESULTS}/saebench/leaderboard.md", category="SAE benchmark"),
        csv=report(f"{RESULTS}/saebench/leaderboard.csv", category="SAE benchmark"),
        frontier=report(f"{RESULTS}/saebench/plots/sparsity_frontier.png", category="SAE benchmark"),
        metrics=report(f"{RESULTS}/saebench/plots/metrics_vs_l0.png", category="SAE benchmark"),
    params:
        code=code_fingerprint("interpflow.saebench.leaderboard"),
    threads: 1
    log:
        f"{RESULTS}/logs/saebench/leaderboard.log",
    benchmark:
        f"{RESULTS}/benchmarks/saebench/leaderboard.tsv"
    shell:
        "interpflow saebench-leaderboard --threads {threads} --results {input.results:q} --concept-leaderboard {input.concept:q} "
        "--out-md {output.md:q} --out-csv {output.csv:q} --out-frontier-plot {output.frontier:q} "
        "--out-metrics-plot {output.metrics:q} --published {input.published:q} > {log:q} 2>&1"


# The same JSON as SAEBench's tools read it: eval_results/<eval>/<release>_<sae_id>_eval_results.json
rule saebench_eval_results:
    input:
        SAEBENCH_RESULTS,
    output:
        directory(f"{RESULTS}/saebench/eval_results"),
    params:
        code=code_fingerprint("interpflow.saebench.eval_results"),
    threads: 1
    log:
        f"{RESULTS}/logs/saebench/eval_results.log",
    benchmark:
        f"{RESULTS}/benchmarks/saebench/eval_results.tsv"
    shell:
        "interpflow saebench-eval-results --results {input:q} --out {output:q} > {log:q} 2>&1"
