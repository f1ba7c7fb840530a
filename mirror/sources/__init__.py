"""Files and feeds that decisions read: the policy file and what it points at (corpus,
advisory database, capability lock), and the client token file. Each module reads (and, for
the lock and tokens, writes) its files and builds the plain data `mirror.policy` decides on."""
