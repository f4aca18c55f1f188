sim::conformance_tests!(raft::Replica);
