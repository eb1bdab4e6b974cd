"""The MPyC secure-computation core: sharing, pre-aggregation, catalogue, parties, runner.

- :mod:`.sharing`: Shamir split / recombine on the client side, :class:`ShareVector` files;
- :mod:`.encoding` and :mod:`.aggregate`: column values to integers, rows to aggregates;
- :mod:`.catalogue`: the vetted programs, bound to parameters (:mod:`.params`) and pinned by
  hash;
- :mod:`.party`: one MPyC party process (``python -m ptx_chain_node.mpc.party --job ...``);
- :mod:`.runner`: m local parties for one run (embedded mode) and ``reconstruct``.

Input party: ``catalogue.bind(name, version, params).share(columns, m)`` gives one
:class:`~.sharing.ShareVector` per node. Nodes: ``party.py`` with the program reference
gives one result share vector each. Output party: ``runner.reconstruct(bound, vectors)``.

The package imports nothing on purpose: a party process should load only what it needs.
"""
