"""The log-linear engine: cell tables, terms and design, fitting, existence of the MLE, N-hat by group and pooling.

Nothing here imports a stage, the report or the configuration.
"""
