fn main() {
    // Linker flags Node addons need on macOS (undefined napi_* symbols are
    // resolved by the host process); nothing on Linux.
    napi_build::setup();
}
