"""The log-linear engine (statistics only; nothing here imports a stage, the report or the configuration).

Modules, in the order a caller uses them (each imports only those before it):

- :mod:`.scalar`: Brent's root and bounded minimum of a function of one variable (ports of
  scipy's, without importing ``scipy.optimize``);
- :mod:`.status`: :class:`~.status.FitStatus`, the outcome of a fit;
- :mod:`.cells`: complete cell tables (``complete_table``, ``count_table``,
  ``dataset_table``), factor levels and the one cell-key builder;
- :mod:`.design`: term specifications and :class:`~.design.Design`, the model
  matrix of every candidate term of one table;
- :mod:`.existence`: existence and identifiability of the MLE (imports the design);
- :mod:`.fit`: :class:`~.fit.Fit` and ``fit_model`` (imports the existence check);
- :mod:`.estimates`: N-hat by stratum and by group;
- :mod:`.resample`: the parametric bootstrap of one model;
- :mod:`.pooling`: Rubin's rules over the models.
"""
