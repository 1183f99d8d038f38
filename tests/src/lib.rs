//! Test harnesses for ringraft: simulation, checkers and cluster fixtures.
