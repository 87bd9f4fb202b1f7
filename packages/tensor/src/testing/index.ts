// Test utilities shared by backend packages: the backend conformance suite.
export {};
