// The one translation unit that compiles Boost.URL (daemon/http/http_client.cc
// parses request URLs with it).
#include <boost/url/src.hpp>
