"""The step pipeline: a cell's code and inputs become a key; a record replays it or a run saves it.

Data flow, one module a noun::

    analysis (scopes, mutations)   code facts: reads, binds, mutations      pure
    fingerprint, codeprint         value and code fingerprints              pure
      (digests, picklers)          hashing primitives; the hashing picklers
    lineage                        O(1) fingerprints of step outputs
    keys                           session + code + input fingerprints → step key
    observe                        what a step changed: state before and after, shared objects
    capture                        stdout, displays, figures: teed, replayed
    records, catalog               the JSON documents and their operations (never unpickles)
    engine, run                    a kernel's durable state; one run of one step
"""
