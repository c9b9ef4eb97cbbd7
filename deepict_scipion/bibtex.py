"""
@article{deTeresaTrueba2023,
title = {Convolutional networks for supervised mining of molecular patterns within cellular context},
journal = {Nature Methods},
volume = {20},
pages = {284--294},
year = {2023},
doi = {10.1038/s41592-022-01746-2},
author = {de Teresa-Trueba, Irene and Goetz, Sara K. and Mattausch, Alexander and Stojanovska, Frosina and Zimmerli, Christian E. and Toro-Nahuelpan, Mauricio and Cheng, Dorothy W. C. and Tollervey, Fergus and Pape, Constantin and Beck, Martin and Diz-Mu{\\~n}oz, Alba and Kreshuk, Anna and Mahamid, Julia and Zaugg, Judith B.}
}
"""
