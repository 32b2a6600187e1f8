/* Bearer tokens and their scopes. Until http.tokens exists every caller is let through. */
#include "http/http.h"

bool jb_http_authorize(jb_http_req *req, unsigned scope, jb_http_resp *resp) {
  (void)scope;
  (void)resp;
  req->caller = "anonymous";
  req->scopes = JB_SCOPE_READ | JB_SCOPE_WRITE | JB_SCOPE_ADMIN;
  return true;
}
