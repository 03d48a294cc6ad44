"""The algorithms: SAC (the core), CQL / Cal-QL, RLPD, WSRL. Each module gives an agent class and a
``plan(cfg)``: the phases it trains in."""
