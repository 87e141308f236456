//! `mailsync completions SHELL`, with `--json`: one JSON document holding
//! the shell and the same script as without it. No server needed.

use crate::common;

use common::{json_of, stderr, stdout};

#[test]
fn completions_json_is_one_document_with_the_script() {
    let dir = tempfile::tempdir().unwrap();
    let mailsync =
        || common::command_for("http://127.0.0.1:1", common::DEFAULT_ANON_KEY, dir.path());
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let plain = mailsync().args(["completions", shell]).output().unwrap();
        assert!(plain.status.success(), "{shell}: {}", stderr(&plain));
        let json = mailsync()
            .args(["--json", "completions", shell])
            .output()
            .unwrap();
        assert!(json.status.success(), "{shell}: {}", stderr(&json));
        // json_of fails unless stdout is exactly one JSON document.
        let doc = json_of(&json);
        assert_eq!(doc["shell"], shell);
        assert_eq!(doc["script"].as_str(), Some(stdout(&plain).as_str()));
        assert_eq!(doc.as_object().unwrap().len(), 2, "{doc}");
    }
}
