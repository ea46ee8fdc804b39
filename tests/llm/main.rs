//! The language-model engine against fake model servers that speak real HTTP
//! (a model API cannot run here), and a real redis-server where a worker runs:
//! one test binary for the protocols and retries (`protocol`), what a hostile
//! endpoint cannot do (`hostile`), what may never reach a contact (`leaks`), the
//! figures in Redis (`figures`) and an opt-in real local model (`real`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/fake_llm.rs"]
mod fake_llm;

mod figures;
mod hostile;
mod leaks;
mod protocol;
mod real;
