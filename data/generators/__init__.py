"""Generated data with known ground truth: planted-action feature stores (the benchmark family among them),
synthetic videos and flow pairs."""
