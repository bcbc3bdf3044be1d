"""The stages of the analysis, one per notebook: input reading and data preparation (01),
multiple imputation (02), model selection (03) and the bootstrap with pooled estimates (04).

Stages import the engine; they receive the run's parameters as an argument and never import the configuration.
"""
