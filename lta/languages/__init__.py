"""Languages: the paper's XLSum sets, URIEL distances, related languages.

  related             XLSUM_SEEN / XLSUM_UNSEEN, URIEL distance tables, the
                      paper's Table 5 and the related-language rules
  geo                 coordinates trilaterated from URIEL
  make_uriel_tables   rebuilds the committed *.tsv tables from lang2vec
"""
