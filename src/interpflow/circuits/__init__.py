"""The circuit benchmark (InterpBench protocol): Tracr tasks, SIIT models, discovery, scoring."""
