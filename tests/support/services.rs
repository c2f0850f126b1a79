//! Services folders for the service tests, loopback and LAN: a `crashy` service (the
//! example service, crashing a set number of times first, restarted on failure) and a
//! malformed `broken` one. Included by the LAN tests with `#[path]`.

use std::path::Path;

/// Writes `crashy` (running `example`, counting its crashes down in `counter`, which is set
/// to `crashes`) and `broken` into the services folder `services`.
pub fn crashy_and_broken(services: &Path, example: &Path, counter: &Path, crashes: u32) {
    std::fs::write(counter, crashes.to_string()).unwrap();
    std::fs::create_dir_all(services.join("crashy")).unwrap();
    std::fs::write(
        services.join("crashy/service.toml"),
        format!(
            "command = \"{}\"\ndescription = \"crashes first\"\n\
             restart = {{ policy = \"on-failure\", backoff_ms = 50 }}\n\
             env = {{ HELLO_CRASHES = \"{}\" }}\n",
            example.display(),
            counter.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(services.join("broken")).unwrap();
    std::fs::write(
        services.join("broken/service.toml"),
        "command = \"x\"\nargz = 1\n",
    )
    .unwrap();
}
