"""The fault suite (issue 6): FIN under real faults, checked against the reference ledger."""
