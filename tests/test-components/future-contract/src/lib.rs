//! Test fixture: a backend built for a contract version no host accepts (0.9.0).

wit_bindgen::generate!({ path: "wit", world: "proxy-backend" });

struct Future;

impl exports::ytdlp::proxy::backend::Guest for Future {
    fn init(_options: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn get_proxy(_site: String) -> Result<String, String> {
        Ok("http://127.0.0.1:1".to_string())
    }
}

export!(Future);
