"""The overlay agent's domain: what the agent does, whichever front end asks.

Modules:
  overlay       OverlayAgent: local endpoints, held scopes, refresh, the datapath feed
  networks / endpoints / services   the operations on each resource (typed arguments)
  keys          cluster-wide key operations, SIGHUP reload, key file write-back
  diagnosis     members with RTTs, raw table dumps, what the datapath programmed
  operations    all of the above in one bundle, for front ends
  values        what the operations answer (frozen values, no JSON)
  cluster       the node as the agent uses it: the only agent code that reaches the node's
                engine, table state and sync machinery
  tables_view   typed read-only view of the overlay tables
  adoption      re-publishing network and service definitions whose writer went away
  conflicts     duplicate IP/MAC detection and deterministic datapath resolution
  ports         the Protocols of the collaborators the agent is given (store, driver)

Rules: operations take typed arguments, check them and the state before changing anything,
undo their own partial work on failure, and raise `swimnet.agent.errors.OperationError`
(INVALID / NOT_FOUND / CONFLICT / FAILED, with the field at fault); nothing here knows
HTTP, JSON or the command line. Nothing is imported here.
"""
