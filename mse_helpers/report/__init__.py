"""Tables, figures and text of the published report, built from the stages' outputs."""
