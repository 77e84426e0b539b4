"""Where a decision's caller is, and how that is known: the client's address as the
connection and the trusted proxies in front of it give it (`networks`), the country it
maps to, and the facts a decision's input carries about it (`origin`). Which of them
count, and for what, is policy (rego/datavisa/origin)."""
