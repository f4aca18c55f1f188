sim::conformance_tests!(mencius::Replica);
