# The circuit benchmark (InterpBench protocol): each task of `circuits.tasks` compiled from RASP with
# Tracr, its SIIT-trained counterpart, every discovery method of `circuits.methods` on both, each
# method's threshold sweep scored against the known circuit, and the circuit leaderboard.

from interpflow.circuits import RANKS_BY_SCORE
from interpflow.circuits.sweeps import method_params

CIRCUITS = config["circuits"]
CIRCUIT_TASKS = list(CIRCUITS["tasks"])
CIRCUIT_KINDS = list(CIRCUITS["model_kinds"])
CIRCUIT_METHODS = list(CIRCUITS["methods"])
CIRCUIT_SCORES = [
    f"{RESULTS}/circuits/scores/{t}/{k}/{m}.json" for t in CIRCUIT_TASKS for k in CIRCUIT_KINDS for m in CIRCUIT_METHODS
]
CIRCUIT_OUTPUTS = [f"{RESULTS}/circuits/leaderboard.md"] if CIRCUIT_SCORES else []


wildcard_constraints:
    task="|".join(CIRCUIT_TASKS) or "no_task",
    kind="tracr|siit",
    discovery="|".join(CIRCUIT_METHODS) or "no_method",


rule circuit_compile:
    output:
        weights=f"{RESULTS}/circuits/models/{{task}}/tracr.safetensors",
        meta=f"{RESULTS}/circuits/models/{{task}}/tracr.json",
    params:
        code=code_fingerprint("interpflow.circuits.stages"),
    threads: 1
    log:
        f"{RESULTS}/logs/circuits/{{task}}/compile.log",
    benchmark:
        f"{RESULTS}/benchmarks/circuits/{{task}}/compile.tsv"
    shell:
        "interpflow circuit-compile --task {wildcards.task:q} --out-weights {output.weights:q} "
        "--out-meta {output.meta:q} > {log:q} 2>&1"


rule circuit_siit:
    input:
        weights=rules.circuit_compile.output.weights,
        meta=rules.circuit_compile.output.meta,
    output:
        weights=f"{RESULTS}/circuits/models/{{task}}/siit.safetensors",
        meta=f"{RESULTS}/circuits/models/{{task}}/siit.json",
    params:
        siit=json_param(CIRCUITS["siit"]),
        code=code_fingerprint("interpflow.circuits.stages"),
    threads: 1
    log:
        f"{RESULTS}/logs/circuits/{{task}}/siit.log",
    benchmark:
        f"{RESULTS}/benchmarks/circuits/{{task}}/siit.tsv"
    shell:
        "interpflow circuit-siit --threads {threads} --weights {input.weights:q} --meta {input.meta:q} "
        "--siit-cfg {params.siit:q} --out-weights {output.weights:q} --out-meta {output.meta:q} > {log:q} 2>&1"


# One job per (task, model kind, method): the method's threshold sweep and its score against the
# known circuit (one job, not two: importing TransformerLens costs seconds, the scoring milliseconds).
rule circuit_discover:
    input:
        weights=f"{RESULTS}/circuits/models/{{task}}/{{kind}}.safetensors",
        meta=f"{RESULTS}/circuits/models/{{task}}/{{kind}}.json",
    output:
        sweep=f"{RESULTS}/circuits/discovery/{{task}}/{{kind}}/{{discovery}}.parquet",
        table=f"{RESULTS}/circuits/scores/{{task}}/{{kind}}/{{discovery}}.parquet",
        summary=f"{RESULTS}/circuits/scores/{{task}}/{{kind}}/{{discovery}}.json",
    params:
        # the method's settings with its grid from the sweep `circuits.sweep`
        method=lambda w: as_json(method_params(CIRCUITS, w.discovery)),
        sweep=CIRCUITS["sweep"],
        data=json_param(CIRCUITS["data"]),
        # only the methods that rank edges by score read it: changing it re-runs only those
        noise_floor=lambda w: CIRCUITS["noise_floor"] if w.discovery in RANKS_BY_SCORE else 0,
        code=code_fingerprint("interpflow.circuits.stages"),
    threads: 1
    log:
        f"{RESULTS}/logs/circuits/{{task}}/{{kind}}/{{discovery}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/circuits/{{task}}/{{kind}}/{{discovery}}.tsv"
    shell:
        "interpflow circuit-discover --threads {threads} --weights {input.weights:q} --meta {input.meta:q} "
        "--method {wildcards.discovery:q} --method-cfg {params.method:q} --data-cfg {params.data:q} "
        "--noise-floor {params.noise_floor} --sweep-name {params.sweep:q} "
        "--out-sweep {output.sweep:q} --out-table {output.table:q} --out {output.summary:q} > {log:q} 2>&1"


rule circuit_leaderboard:
    input:
        scores=CIRCUIT_SCORES,
        tables=[p.replace(".json", ".parquet") for p in CIRCUIT_SCORES],
        siit=[f"{RESULTS}/circuits/models/{t}/siit.json" for t in CIRCUIT_TASKS] if "siit" in CIRCUIT_KINDS else [],
    output:
        md=report(f"{RESULTS}/circuits/leaderboard.md", category="Circuit benchmark"),
        csv=report(f"{RESULTS}/circuits/leaderboard.csv", category="Circuit benchmark"),
        plots=[f"{RESULTS}/circuits/plots/roc_{m}.png" for m in CIRCUIT_METHODS],
    params:
        plots_dir=f"{RESULTS}/circuits/plots",
        code=code_fingerprint("interpflow.circuits.leaderboard"),
    threads: 1
    log:
        f"{RESULTS}/logs/circuits/leaderboard.log",
    benchmark:
        f"{RESULTS}/benchmarks/circuits/leaderboard.tsv"
    shell:
        "interpflow circuit-leaderboard --scores {input.scores:q} --siit {input.siit:q} --out-md {output.md:q} "
        "--out-csv {output.csv:q} --plots-dir {params.plots_dir:q} > {log:q} 2>&1"
