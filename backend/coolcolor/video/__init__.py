"""The video engine: real footage in, one ab EXR per frame out (docs/architecture.md#the-data-path).

``run.run_colorize_job`` is the one entry point (the CLI's ``coolcolor colorize`` and the daemon
both call it); ``job`` is the job's contract, ``run`` its driver. The modules below it each do one job: ``sources`` reads frames lazily through field
libraries, ``encoding`` turns a declared input encoding into the model's sRGB gray, ``shots``
finds cuts, ``exr`` writes the ab layer atomically with its provenance.
"""
