"""Languages: the paper's XLSum sets, URIEL distances, related languages.

  lta.languages.related            XLSUM_SEEN / XLSUM_UNSEEN, the paper's
                                   Table 5, related-source selection
  lta.languages.geo                coordinates trilaterated from URIEL
  lta.languages.make_uriel_tables  regenerates the committed .tsv tables
"""
