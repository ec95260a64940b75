"""Campaigns: audiences from the engine and the predictions, messages, delivery figures, holdouts.

`records` holds what is stored (as store documents), `audiences` who a kind of campaign selects
(pure rules over one customer's history), `messages` the local writer of subjects and bodies,
`campaigns` the batch that builds and stores a campaign, `performance` the events and the
figures measured against the holdout, `export` the files an e-mail or push sender reads.
"""
