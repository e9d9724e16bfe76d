"""Languages: URIEL distances, coordinates and related-language choice.

  related             URIEL distance tables and the related-language rules
  geo                 geographic distance from URIEL coordinates
  make_uriel_tables   rebuilds the committed *.tsv tables from lang2vec
"""
