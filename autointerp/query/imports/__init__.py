"""Labels written by other interpretability tools, stored as explanations of our units so that our
scorers can score them with the same protocol as our own (`autointerp score --explainer imported:TOOL`).

One module per tool reads its documented file format into `ImportedLabel`s; `labels.store_labels`
writes them. Each imported explanation keeps the tool's own score, when the file has one, in its meta.
"""
