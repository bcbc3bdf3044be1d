"""Parameters of a run, the pipeline runner (papermill, nbconvert) and the run index."""
