//! `GET /consent-service`: a stand-in for DVV's consent service, where a citizen grants or
//! revokes a digipost operator's viewing right. The gateway links citizens here.

use http::{Response, StatusCode};

use crate::app::App;
use crate::http::{html, Body};

/// The page, with a small form driving the admin consent calls.
pub fn page(app: &App) -> Response<Body> {
    let options: String = app
        .domain
        .providers()
        .iter()
        .map(|(id, name)| format!("<option value=\"{}\">{}</option>", escape(id), escape(name)))
        .collect();
    let page = format!(
        r#"<!doctype html>
<html lang="fi">
<head><meta charset="utf-8"><title>Suostumukset (sandbox)</title>
<style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}}label{{display:block;margin:.5em 0}}</style>
</head>
<body>
<h1>Digipostipalveluiden katseluoikeudet</h1>
<p>This page stands in for DVV's consent service in the Ikkuna sandbox. Nothing here is real:
the citizens and operators are fictional.</p>
<form id="f">
<label>Identity code <input id="code" required pattern="[0-9]{{6}}[-+A-FU-Y][0-9]{{3}}[0-9A-Y]" autocomplete="off"></label>
<label>Service <select id="provider">{options}</select></label>
<button type="button" data-op="grant">Grant viewing right</button>
<button type="button" data-op="revoke">Revoke viewing right</button>
</form>
<pre id="out"></pre>
<script>
for (const b of document.querySelectorAll("button[data-op]")) {{
  b.addEventListener("click", async () => {{
    const res = await fetch("/admin/consents/" + b.dataset.op, {{
      method: "POST",
      headers: {{"content-type": "application/json"}},
      body: JSON.stringify({{endUserId: document.getElementById("code").value,
                             providerId: document.getElementById("provider").value}})
    }});
    document.getElementById("out").textContent = res.status + " " + await res.text();
  }});
}}
</script>
</body>
</html>
"#
    );
    html(StatusCode::OK, page)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
