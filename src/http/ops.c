/* Operations routes: liveness. */
#include "http/http.h"

static void healthz(jb_http_req *req, jb_http_resp *resp) {
  (void)req;
  json_t *doc = json_pack("{s:s}", "status", "ok");
  jb_http_reply_json(resp, 200, doc);
  json_decref(doc);
}

const jb_http_route jb_http_ops_routes[] = {
    {"GET", "/healthz", JB_SCOPE_PUBLIC, healthz},
};
const size_t jb_http_ops_nroutes = sizeof jb_http_ops_routes / sizeof jb_http_ops_routes[0];
