"""Scoring: entity F1 (conlleval rules), the gains with paired bootstrap intervals and
randomization tests, the breakdown by word category, the reports and the figures."""
