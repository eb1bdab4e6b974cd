"""MPC as a chain node: chain configuration, matching, row mapping and the MPC processor.

- :mod:`.config`: the chain configuration file (pydantic models, loader, checker);
- :mod:`.contracts`: contracts fetched from the configured contract services, cached;
- :mod:`.matching`: a request's configuration by target id or by the contract's catalogId;
- :mod:`.records`: a thread's JSON records to typed columns (bad rows refused or skipped);
- :mod:`.threads`: the data threads of a chain step as input parties;
- :mod:`.processor`: the ``mpc`` processor (collaborations on the compute nodes).
"""
