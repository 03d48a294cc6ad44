"""The algorithms. Each module gives ``Agent`` (the class that learns) and ``plan(schedule)`` (the
phases it trains in); its defaults, with their sources, are in ``configs/algo/<name>.yaml``."""
from robot_rl.algos import bc, corft, cql, h2o, ibrl, residual, rlpd, sac, wsrl

ALGORITHMS = {"bc": bc, "sac": sac, "cql": cql, "calql": cql, "rlpd": rlpd, "ibrl": ibrl, "residual": residual,
              "wsrl": wsrl, "h2o": h2o, "corft": corft}
