"""The shapes every layer shares, at the bottom of the engine.

Holds the lifecycle's record shapes and state vocabulary (`records`: requests, which
become grants, approvals, alerts, and the state the clock says a record is in), the shape
of a policy decision and an access check (`decision`), the errors a user can act on
(`errors`), durations and times as written on the wire (`durations`) and free-form JSON
bounded in size and depth, measured and parsed without recursion (`bounded`), and the
background thread the periodic jobs run in (`worker`).

May import: the standard library only. Everything else in the engine may import it.
"""
