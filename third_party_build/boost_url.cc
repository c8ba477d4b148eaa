// The one translation unit that compiles Boost.URL (daemon/http_client.cc
// parses request URLs with it).
#include <boost/url/src.hpp>
