//! Test fixture: a valid component for another world (not a proxy backend).

wit_bindgen::generate!({ path: "wit", world: "other" });

struct Greeter;

impl exports::fixture::other::greeter::Guest for Greeter {
    fn greet() -> String {
        "hello".to_string()
    }
}

export!(Greeter);
