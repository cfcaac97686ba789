//! `uniffi-bindgen`, pinned to the binding's uniffi version, so the Kotlin the
//! build generates always matches the scaffolding inside the native library.
fn main() {
    uniffi::uniffi_bindgen_main()
}
